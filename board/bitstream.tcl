# Vivado batch flow for the PYNQ overlay: package the accelerator's Verilog as an IP, build the
# block design (the processing system, AXI DMA in simple mode, the accelerator, two AXI
# interconnects, a processor-system reset), implement it and write OVERLAY.bit + OVERLAY.hwh.
# One script for both board families: only the processing system differs (step 2a), and the
# rest of the block design reaches it through the PS_* names that step sets.
#   zynq    (Zynq-7000, PYNQ-Z2):         processing_system7, FCLK_CLK0, control on M_AXI_GP0,
#                                          DMA on S_AXI_HP0
#   zynqmp  (Zynq UltraScale+, KV260):    zynq_ultra_ps_e, pl_clk0, control on M_AXI_HPM0_FPD,
#                                          DMA on S_AXI_HP0_FPD
#
# `make bitstream` (python -m host.bitstream) generates the Verilog and runs:
#   vivado -mode batch -source board/bitstream.tcl -tclargs \
#       VERILOG TOP OUT_DIR OVERLAY IP_INSTANCE DMA_INSTANCE PART FAMILY BOARD LENGTH_WIDTH CLOCK_MHZ JOBS
# FAMILY is zynq or zynqmp; BOARD a glob of the Vivado board part whose presets the processing
# system takes when those board files are installed ("-": none). CLOCK_MHZ is the accelerator
# configuration's clock_mhz (protocol/config.py), which host.bitstream passes unless
# `make bitstream CLOCK_MHZ=...` overrides it; this script has no clock of its own.
#
# Without the board files the processing system keeps Vivado's defaults except for what the
# overlay needs (the fabric clock, one master port for control, one HP port for the DMA): a
# PYNQ image configures DDR and MIO at boot, an overlay only programs the fabric and the
# clocks its .hwh names.

if {[llength $argv] != 12} {
    puts "usage: vivado -mode batch -source bitstream.tcl -tclargs VERILOG TOP OUT_DIR OVERLAY\
          IP_INSTANCE DMA_INSTANCE PART FAMILY BOARD LENGTH_WIDTH CLOCK_MHZ JOBS"
    exit 2
}
lassign $argv verilog top out_dir overlay ip_inst dma_inst part family board_glob length_width clock_mhz jobs
if {$family ni {zynq zynqmp}} {
    puts "ERROR: FAMILY must be zynq or zynqmp, not $family"
    exit 2
}
set verilog [file normalize $verilog]
set out_dir [file normalize $out_dir]

# Interfaces of the accelerator top (tests/test_host_board.py checks them against the Verilog).
set CLOCK_PORT aclk
set RESET_PORT aresetn
set CONTROL_INTF s_axi
set STREAM_IN_INTF s_axis
set STREAM_OUT_INTF m_axis
set STREAM_BITS 64
set IP_VENDOR spikeformer.local
set IP_LIBRARY user
set IP_VERSION 1.0

# ---------------------------------------------------------------- 1. package the Verilog as an IP
set ip_repo $out_dir/ip_repo
file delete -force $ip_repo $out_dir/package
create_project -force package $out_dir/package -part $part
add_files -norecurse $verilog
set_property top $top [current_fileset]
update_compile_order -fileset sources_1
ipx::package_project -root_dir $ip_repo -vendor $IP_VENDOR -library $IP_LIBRARY -taxonomy /UserIP \
    -import_files -set_current true
set core [ipx::current_core]
set_property version $IP_VERSION $core
set_property display_name "Spikeformer accelerator ($top)" $core

# Vivado infers the interfaces from the port names (<intf>_awaddr, <intf>_tdata, ...); check
# that it did, and make the clock / reset association and the reset polarity explicit.
foreach {vlnv name} [list \
        xilinx.com:interface:aximm_rtl:1.0 $CONTROL_INTF \
        xilinx.com:interface:axis_rtl:1.0 $STREAM_IN_INTF \
        xilinx.com:interface:axis_rtl:1.0 $STREAM_OUT_INTF \
        xilinx.com:signal:clock_rtl:1.0 $CLOCK_PORT \
        xilinx.com:signal:reset_rtl:1.0 $RESET_PORT] {
    if {[ipx::get_bus_interfaces $name -of_objects $core] eq ""} {
        ipx::infer_bus_interfaces $vlnv $core
    }
    if {[ipx::get_bus_interfaces $name -of_objects $core] eq ""} {
        puts "ERROR: interface $name was not inferred from the ports of $top"
        exit 1
    }
}
set reset_if [ipx::get_bus_interfaces $RESET_PORT -of_objects $core]
if {[ipx::get_bus_parameters POLARITY -of_objects $reset_if] eq ""} {
    ipx::add_bus_parameter POLARITY $reset_if
}
set_property value ACTIVE_LOW [ipx::get_bus_parameters POLARITY -of_objects $reset_if]
ipx::associate_bus_interfaces -busif $CONTROL_INTF -clock $CLOCK_PORT $core
ipx::associate_bus_interfaces -busif $STREAM_IN_INTF -clock $CLOCK_PORT $core
ipx::associate_bus_interfaces -busif $STREAM_OUT_INTF -clock $CLOCK_PORT $core
ipx::associate_bus_interfaces -clock $CLOCK_PORT -reset $RESET_PORT $core
set_property core_revision 1 $core
ipx::create_xgui_files $core
ipx::update_checksums $core
ipx::check_integrity $core
ipx::save_core $core
close_project

# ---------------------------------------------------------------- 2. block design
create_project -force $overlay $out_dir/vivado -part $part
set board ""
if {$board_glob ne "-"} {
    set board [lindex [get_board_parts -quiet -latest_file_version $board_glob] 0]
}
if {$board ne ""} {
    set_property board_part $board [current_project]
}
set_property ip_repo_paths $ip_repo [current_project]
update_ip_catalog
create_bd_design $overlay

# ---- 2a. the processing system of the family; it sets the PS_* pin names the rest connects:
# PS_CLOCK (fabric clock out), PS_RESETN (its active-low reset), PS_CONTROL (AXI master for the
# registers), PS_MEMORY (AXI slave to DDR for the DMA), PS_BUS_CLOCKS (the clocks of those two).
if {$family eq "zynq"} {
    set ps [create_bd_cell -type ip -vlnv xilinx.com:ip:processing_system7:5.5 processing_system7_0]
    apply_bd_automation -rule xilinx.com:bd_rule:processing_system7 \
        -config [list make_external "FIXED_IO, DDR" apply_board_preset [expr {$board ne "" ? 1 : 0}] \
                 Master Disable Slave Disable] $ps
    set_property -dict [list \
        CONFIG.PCW_FPGA0_PERIPHERAL_FREQMHZ $clock_mhz \
        CONFIG.PCW_USE_M_AXI_GP0 1 \
        CONFIG.PCW_USE_S_AXI_HP0 1 \
        CONFIG.PCW_S_AXI_HP0_DATA_WIDTH $STREAM_BITS] $ps
    set PS_CLOCK processing_system7_0/FCLK_CLK0
    set PS_RESETN processing_system7_0/FCLK_RESET0_N
    set PS_CONTROL processing_system7_0/M_AXI_GP0
    set PS_MEMORY processing_system7_0/S_AXI_HP0
    set PS_BUS_CLOCKS [list processing_system7_0/M_AXI_GP0_ACLK processing_system7_0/S_AXI_HP0_ACLK]
} else {
    # The IP's version changes with Vivado releases (3.3 in 2020.2, 3.5 in 2023.x): take the
    # installed one. DDR and MIO are not external pins on ZynqMP, so there is nothing to export.
    set ps_ip [lindex [lsort -dictionary [get_ipdefs -all xilinx.com:ip:zynq_ultra_ps_e:*]] end]
    if {$ps_ip eq ""} {
        puts "ERROR: this Vivado has no zynq_ultra_ps_e IP (Zynq UltraScale+ support is not installed)"
        exit 1
    }
    set ps [create_bd_cell -type ip -vlnv $ps_ip zynq_ultra_ps_e_0]
    if {$board ne ""} {
        apply_bd_automation -rule xilinx.com:bd_rule:zynq_ultra_ps_e -config {apply_board_preset "1"} $ps
    }
    # M_AXI_GP0 is HPM0_FPD (control), S_AXI_GP2 is HP0_FPD (the DMA); the other master ports
    # (HPM1_FPD, HPM0_LPD), which a board preset may enable, are switched off so no port is open.
    set_property -dict [list \
        CONFIG.PSU__FPGA_PL0_ENABLE 1 \
        CONFIG.PSU__CRL_APB__PL0_REF_CTRL__FREQMHZ $clock_mhz \
        CONFIG.PSU__USE__M_AXI_GP0 1 \
        CONFIG.PSU__USE__M_AXI_GP1 0 \
        CONFIG.PSU__USE__M_AXI_GP2 0 \
        CONFIG.PSU__USE__S_AXI_GP2 1 \
        CONFIG.PSU__SAXIGP2__DATA_WIDTH $STREAM_BITS] $ps
    set PS_CLOCK zynq_ultra_ps_e_0/pl_clk0
    set PS_RESETN zynq_ultra_ps_e_0/pl_resetn0
    set PS_CONTROL zynq_ultra_ps_e_0/M_AXI_HPM0_FPD
    set PS_MEMORY zynq_ultra_ps_e_0/S_AXI_HP0_FPD
    set PS_BUS_CLOCKS [list zynq_ultra_ps_e_0/maxihpm0_fpd_aclk zynq_ultra_ps_e_0/saxihp0_fpd_aclk]
}

# ---- 2b. the accelerator side, the same for both families.

# AXI DMA, simple mode; the buffer length register is LENGTH_WIDTH bits wide (the default 14
# bits would cap a transfer at 16 KB, far less than one sample's program stream).
set dma [create_bd_cell -type ip -vlnv xilinx.com:ip:axi_dma:7.1 $dma_inst]
set_property -dict [list \
    CONFIG.c_include_sg 0 \
    CONFIG.c_sg_length_width $length_width \
    CONFIG.c_m_axi_mm2s_data_width $STREAM_BITS \
    CONFIG.c_m_axis_mm2s_tdata_width $STREAM_BITS \
    CONFIG.c_m_axi_s2mm_data_width $STREAM_BITS \
    CONFIG.c_s_axis_s2mm_tdata_width $STREAM_BITS \
    CONFIG.c_mm2s_burst_size 16 \
    CONFIG.c_s2mm_burst_size 16] $dma

set accel [create_bd_cell -type ip -vlnv $IP_VENDOR:$IP_LIBRARY:$top:$IP_VERSION $ip_inst]
set reset [create_bd_cell -type ip -vlnv xilinx.com:ip:proc_sys_reset:5.0 proc_sys_reset_0]
set control_ic [create_bd_cell -type ip -vlnv xilinx.com:ip:axi_interconnect:2.1 axi_interconnect_control]
set_property -dict [list CONFIG.NUM_SI 1 CONFIG.NUM_MI 2] $control_ic
set memory_ic [create_bd_cell -type ip -vlnv xilinx.com:ip:axi_interconnect:2.1 axi_interconnect_memory]
set_property -dict [list CONFIG.NUM_SI 2 CONFIG.NUM_MI 1] $memory_ic

# One clock (the PS's fabric clock 0) for everything (no lmap: Vivado's Tcl may be 8.5).
set bus_clock_pins {}
foreach pin $PS_BUS_CLOCKS {
    lappend bus_clock_pins [get_bd_pins $pin]
}
connect_bd_net [get_bd_pins $PS_CLOCK] \
    {*}$bus_clock_pins \
    [get_bd_pins $dma_inst/s_axi_lite_aclk] \
    [get_bd_pins $dma_inst/m_axi_mm2s_aclk] \
    [get_bd_pins $dma_inst/m_axi_s2mm_aclk] \
    [get_bd_pins $ip_inst/$CLOCK_PORT] \
    [get_bd_pins proc_sys_reset_0/slowest_sync_clk] \
    [get_bd_pins axi_interconnect_control/ACLK] \
    [get_bd_pins axi_interconnect_control/S00_ACLK] \
    [get_bd_pins axi_interconnect_control/M00_ACLK] \
    [get_bd_pins axi_interconnect_control/M01_ACLK] \
    [get_bd_pins axi_interconnect_memory/ACLK] \
    [get_bd_pins axi_interconnect_memory/S00_ACLK] \
    [get_bd_pins axi_interconnect_memory/S01_ACLK] \
    [get_bd_pins axi_interconnect_memory/M00_ACLK]

# Resets: the PS's fabric reset through proc_sys_reset (active-low, synchronous to the clock).
connect_bd_net [get_bd_pins $PS_RESETN] [get_bd_pins proc_sys_reset_0/ext_reset_in]
connect_bd_net [get_bd_pins proc_sys_reset_0/interconnect_aresetn] \
    [get_bd_pins axi_interconnect_control/ARESETN] \
    [get_bd_pins axi_interconnect_memory/ARESETN]
connect_bd_net [get_bd_pins proc_sys_reset_0/peripheral_aresetn] \
    [get_bd_pins axi_interconnect_control/S00_ARESETN] \
    [get_bd_pins axi_interconnect_control/M00_ARESETN] \
    [get_bd_pins axi_interconnect_control/M01_ARESETN] \
    [get_bd_pins axi_interconnect_memory/S00_ARESETN] \
    [get_bd_pins axi_interconnect_memory/S01_ARESETN] \
    [get_bd_pins axi_interconnect_memory/M00_ARESETN] \
    [get_bd_pins $dma_inst/axi_resetn] \
    [get_bd_pins $ip_inst/$RESET_PORT]

# Control: the PS's master port -> the DMA's and the accelerator's AXI4-Lite registers.
connect_bd_intf_net [get_bd_intf_pins $PS_CONTROL] [get_bd_intf_pins axi_interconnect_control/S00_AXI]
connect_bd_intf_net [get_bd_intf_pins axi_interconnect_control/M00_AXI] [get_bd_intf_pins $dma_inst/S_AXI_LITE]
connect_bd_intf_net [get_bd_intf_pins axi_interconnect_control/M01_AXI] [get_bd_intf_pins $ip_inst/$CONTROL_INTF]

# Data: the DMA reads and writes DDR through the HP port and streams to and from the accelerator.
connect_bd_intf_net [get_bd_intf_pins $dma_inst/M_AXI_MM2S] [get_bd_intf_pins axi_interconnect_memory/S00_AXI]
connect_bd_intf_net [get_bd_intf_pins $dma_inst/M_AXI_S2MM] [get_bd_intf_pins axi_interconnect_memory/S01_AXI]
connect_bd_intf_net [get_bd_intf_pins axi_interconnect_memory/M00_AXI] [get_bd_intf_pins $PS_MEMORY]
connect_bd_intf_net [get_bd_intf_pins $dma_inst/M_AXIS_MM2S] [get_bd_intf_pins $ip_inst/$STREAM_IN_INTF]
connect_bd_intf_net [get_bd_intf_pins $ip_inst/$STREAM_OUT_INTF] [get_bd_intf_pins $dma_inst/S_AXIS_S2MM]

assign_bd_address
validate_bd_design
save_bd_design

# ---------------------------------------------------------------- 3. implement, write the overlay
set bd_file [get_files $overlay.bd]
generate_target all $bd_file
add_files -norecurse [make_wrapper -files $bd_file -top]
set_property top ${overlay}_wrapper [current_fileset]
update_compile_order -fileset sources_1
launch_runs impl_1 -to_step write_bitstream -jobs $jobs
wait_on_run impl_1
if {[get_property PROGRESS [get_runs impl_1]] ne "100%"} {
    puts "ERROR: implementation failed; see $out_dir/vivado/$overlay.runs/impl_1/runme.log"
    exit 1
}
set wns [get_property STATS.WNS [get_runs impl_1]]
if {$wns < 0} {
    puts "ERROR: timing not met at $clock_mhz MHz (WNS $wns ns); rerun with a lower CLOCK_MHZ"
    exit 1
}
set bit [lindex [glob -nocomplain $out_dir/vivado/$overlay.runs/impl_1/*.bit] 0]
set hwh [lindex [glob -nocomplain \
    $out_dir/vivado/$overlay.gen/sources_1/bd/$overlay/hw_handoff/$overlay.hwh \
    $out_dir/vivado/$overlay.srcs/sources_1/bd/$overlay/hw_handoff/$overlay.hwh] 0]
if {$bit eq "" || $hwh eq ""} {
    puts "ERROR: no bitstream or hardware handoff file was written"
    exit 1
}
file copy -force $bit $out_dir/$overlay.bit
file copy -force $hwh $out_dir/$overlay.hwh
puts "overlay: $out_dir/$overlay.bit $out_dir/$overlay.hwh (WNS $wns ns at $clock_mhz MHz)"
