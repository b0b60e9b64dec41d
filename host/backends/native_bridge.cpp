// In-process bridge of the host driver's simulation backend (host/backends/native_backend.py).
//
// Compiled by Verilator together with the accelerator top (any top with the ports aclk,
// aresetn, s_axi_*, s_axis_t{data,valid,ready,last}, m_axis_t{data,valid,ready,last}) into a
// shared library that Python loads with ctypes. It drives the clock itself and models the
// two bus masters the board has:
//
// * an AXI4-Lite master for register reads and writes (one transaction at a time);
// * an AXI DMA in simple mode: a memory-to-stream channel that sends one transfer's words
//   with TLAST on the last, and a stream-to-memory channel that receives one packet up to
//   TLAST (a packet longer than the transfer is a DMA error) and holds TREADY low while no
//   transfer is armed.
//
// Each cycle first settles the inputs set after the previous edge (clock low), samples every
// handshake there (the values the flip-flops see at the coming edge), then raises the clock
// and updates the models from the sampled handshakes, so the models and the design always
// agree on which transfers happened.

#include "Vtop.h"
#include "verilated.h"
#if VM_TRACE
#include "verilated_fst_c.h"
#endif

#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

namespace {

struct Sampled {
    bool send_fire, receive_fire, receive_last;
    uint64_t receive_data;
    bool awready, wready, bvalid, arready, rvalid;
    uint32_t bresp, rresp, rdata;
};

struct Sim {
    std::unique_ptr<VerilatedContext> context;
    std::unique_ptr<Vtop> top;
#if VM_TRACE
    std::unique_ptr<VerilatedFstC> trace;
#endif
    uint64_t cycle = 0;
    uint64_t half_period_ps = 5000;
    std::string error;

    std::vector<uint64_t> send;
    size_t send_index = 0;
    bool send_busy = false;
    std::string send_error;

    std::vector<uint64_t> received;
    uint64_t receive_limit = 0;
    bool receive_busy = false;
    std::string receive_error;

    void dump(uint64_t time_ps) {
#if VM_TRACE
        if (trace) trace->dump(time_ps);
#else
        (void)time_ps;
#endif
    }

    void present() {
        top->s_axis_tdata = send[send_index];
        top->s_axis_tlast = send_index + 1 == send.size();
        top->s_axis_tvalid = 1;
    }

    Sampled tick() {
        Vtop& t = *top;
        t.aclk = 0;
        t.eval();
        dump((2 * cycle + 1) * half_period_ps);
        Sampled s{};
        s.send_fire = send_busy && t.s_axis_tvalid && t.s_axis_tready;
        s.receive_fire = receive_busy && t.m_axis_tvalid && t.m_axis_tready;
        s.receive_data = t.m_axis_tdata;
        s.receive_last = t.m_axis_tlast;
        s.awready = t.s_axi_awready;
        s.wready = t.s_axi_wready;
        s.bvalid = t.s_axi_bvalid;
        s.bresp = t.s_axi_bresp;
        s.arready = t.s_axi_arready;
        s.rvalid = t.s_axi_rvalid;
        s.rresp = t.s_axi_rresp;
        s.rdata = t.s_axi_rdata;
        t.aclk = 1;
        t.eval();
        ++cycle;
        dump(2 * cycle * half_period_ps);
        if (s.send_fire) {
            if (++send_index == send.size()) {
                send_busy = false;
                t.s_axis_tvalid = 0;
                t.s_axis_tlast = 0;
            } else {
                present();
            }
        }
        if (s.receive_fire) {
            received.push_back(s.receive_data);
            if (s.receive_last) {
                receive_busy = false;
            } else if (received.size() == receive_limit) {
                receive_error = "DMAIntErr: packet longer than the " + std::to_string(receive_limit) +
                                "-word transfer (no TLAST)";
                receive_busy = false;
            }
            if (!receive_busy) t.m_axis_tready = 0;
        }
        return s;
    }

    void reset(int cycles) {
        top->aresetn = 0;
        for (int i = 0; i < cycles; ++i) tick();
        top->aresetn = 1;
        tick();
    }
};

}  // namespace

extern "C" {

void* hs_create(uint64_t period_ps, const char* trace_path) {
    auto* sim = new Sim;
    sim->context = std::make_unique<VerilatedContext>();
    sim->top = std::make_unique<Vtop>(sim->context.get(), "top");
    sim->half_period_ps = period_ps / 2 ? period_ps / 2 : 1;
#if VM_TRACE
    if (trace_path && *trace_path) {
        sim->context->traceEverOn(true);
        sim->trace = std::make_unique<VerilatedFstC>();
        sim->top->trace(sim->trace.get(), 99);
        sim->trace->open(trace_path);
    }
#else
    (void)trace_path;
#endif
    Vtop& t = *sim->top;
    t.aclk = 0;
    t.s_axi_awvalid = 0;
    t.s_axi_wvalid = 0;
    t.s_axi_bready = 0;
    t.s_axi_arvalid = 0;
    t.s_axi_rready = 0;
    t.s_axis_tvalid = 0;
    t.s_axis_tlast = 0;
    t.s_axis_tdata = 0;
    t.m_axis_tready = 0;
    sim->reset(8);
    return sim;
}

void hs_destroy(void* handle) {
    auto* sim = static_cast<Sim*>(handle);
    sim->top->final();
#if VM_TRACE
    if (sim->trace) sim->trace->close();
#endif
    delete sim;
}

uint64_t hs_cycle(void* handle) { return static_cast<Sim*>(handle)->cycle; }

const char* hs_error(void* handle) { return static_cast<Sim*>(handle)->error.c_str(); }

void hs_advance(void* handle, uint64_t cycles) {
    auto* sim = static_cast<Sim*>(handle);
    for (uint64_t i = 0; i < cycles; ++i) sim->tick();
}

void hs_reset(void* handle, int cycles) { static_cast<Sim*>(handle)->reset(cycles); }

// AXI4-Lite read: 0 on success, -1 on a timeout, -2 on an error response (SLVERR / DECERR).
int hs_read(void* handle, uint32_t address, uint32_t* value, uint64_t max_cycles) {
    auto* sim = static_cast<Sim*>(handle);
    Vtop& t = *sim->top;
    t.s_axi_araddr = address;
    t.s_axi_arvalid = 1;
    t.s_axi_rready = 1;
    for (uint64_t i = 0; i < max_cycles; ++i) {
        Sampled s = sim->tick();
        if (t.s_axi_arvalid && s.arready) t.s_axi_arvalid = 0;
        if (s.rvalid) {
            t.s_axi_rready = 0;
            t.s_axi_arvalid = 0;
            *value = s.rdata;
            if (s.rresp) {
                sim->error = "read of " + std::to_string(address) + " answered RRESP " + std::to_string(s.rresp);
                return -2;
            }
            return 0;
        }
    }
    t.s_axi_arvalid = 0;
    t.s_axi_rready = 0;
    sim->error = "read of " + std::to_string(address) + " got no response";
    return -1;
}

// AXI4-Lite write of all four bytes: 0 on success, -1 on a timeout, -2 on an error response.
int hs_write(void* handle, uint32_t address, uint32_t value, uint64_t max_cycles) {
    auto* sim = static_cast<Sim*>(handle);
    Vtop& t = *sim->top;
    t.s_axi_awaddr = address;
    t.s_axi_awvalid = 1;
    t.s_axi_wdata = value;
    t.s_axi_wstrb = 0xF;
    t.s_axi_wvalid = 1;
    t.s_axi_bready = 1;
    for (uint64_t i = 0; i < max_cycles; ++i) {
        const bool aw_pending = t.s_axi_awvalid, w_pending = t.s_axi_wvalid;
        Sampled s = sim->tick();
        if (aw_pending && s.awready) t.s_axi_awvalid = 0;
        if (w_pending && s.wready) t.s_axi_wvalid = 0;
        if (s.bvalid) {
            t.s_axi_bready = 0;
            t.s_axi_awvalid = 0;
            t.s_axi_wvalid = 0;
            if (s.bresp) {
                sim->error = "write of " + std::to_string(address) + " answered BRESP " + std::to_string(s.bresp);
                return -2;
            }
            return 0;
        }
    }
    t.s_axi_awvalid = 0;
    t.s_axi_wvalid = 0;
    t.s_axi_bready = 0;
    sim->error = "write of " + std::to_string(address) + " got no response";
    return -1;
}

// Start a memory-to-stream transfer of ``count`` words: 0, or -1 when the channel is busy.
int hs_send(void* handle, const uint64_t* words, uint64_t count) {
    auto* sim = static_cast<Sim*>(handle);
    if (sim->send_busy) {
        sim->error = "MM2S channel not idle";
        return -1;
    }
    if (count == 0) {
        sim->send_error = "DMAIntErr: transfer length 0";
        return 0;
    }
    sim->send.assign(words, words + count);
    sim->send_index = 0;
    sim->send_busy = true;
    sim->present();
    return 0;
}

// Arm a stream-to-memory transfer of at most ``limit`` words: 0, or -1 when the channel is busy.
int hs_receive(void* handle, uint64_t limit) {
    auto* sim = static_cast<Sim*>(handle);
    if (sim->receive_busy) {
        sim->error = "S2MM channel not idle";
        return -1;
    }
    sim->received.clear();
    if (limit == 0) {
        sim->receive_error = "DMAIntErr: transfer length 0";
        return 0;
    }
    sim->receive_limit = limit;
    sim->receive_busy = true;
    sim->top->m_axis_tready = 1;
    return 0;
}

// Channel states; the error strings stay valid until the next call that changes them.
void hs_state(void* handle, int* send_busy, const char** send_error, int* receive_busy,
              const char** receive_error, uint64_t* received) {
    auto* sim = static_cast<Sim*>(handle);
    *send_busy = sim->send_busy;
    *send_error = sim->send_error.c_str();
    *receive_busy = sim->receive_busy;
    *receive_error = sim->receive_error.c_str();
    *received = sim->received.size();
}

// Copy up to ``limit`` received words; returns how many were copied.
uint64_t hs_take(void* handle, uint64_t* out, uint64_t limit) {
    auto* sim = static_cast<Sim*>(handle);
    const uint64_t count = sim->received.size() < limit ? sim->received.size() : limit;
    std::memcpy(out, sim->received.data(), count * sizeof(uint64_t));
    return count;
}

// The DMA's soft reset: abort both channels and clear their errors.
void hs_reset_dma(void* handle) {
    auto* sim = static_cast<Sim*>(handle);
    sim->send_busy = false;
    sim->send_error.clear();
    sim->receive_busy = false;
    sim->receive_error.clear();
    sim->top->s_axis_tvalid = 0;
    sim->top->s_axis_tlast = 0;
    sim->top->m_axis_tready = 0;
    sim->tick();
}

}  // extern "C"
