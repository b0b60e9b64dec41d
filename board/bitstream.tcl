# Vivado batch flow for the PYNQ overlay: package the accelerator's Verilog as an IP, build the
# block design (processing_system7, AXI DMA in simple mode, the accelerator, two AXI
# interconnects, a processor-system reset), implement it and write OVERLAY.bit + OVERLAY.hwh.
#
# `make bitstream` (python -m host.bitstream) generates the Verilog and runs:
#   vivado -mode batch -source board/bitstream.tcl -tclargs \
#       VERILOG TOP OUT_DIR OVERLAY IP_INSTANCE DMA_INSTANCE PART LENGTH_WIDTH CLOCK_MHZ JOBS
# CLOCK_MHZ is the accelerator configuration's clock_mhz (protocol/config.py), which
# host.bitstream passes unless `make bitstream CLOCK_MHZ=...` overrides it; this script has
# no clock of its own.
#
# Without the PYNQ-Z2 board files the processing system keeps Vivado's defaults except for
# what the overlay needs (FCLK0, M_AXI_GP0, S_AXI_HP0): a PYNQ image configures DDR and MIO at
# boot, an overlay only programs the fabric and the clocks its .hwh names.

if {[llength $argv] != 10} {
    puts "usage: vivado -mode batch -source bitstream.tcl -tclargs VERILOG TOP OUT_DIR OVERLAY\
          IP_INSTANCE DMA_INSTANCE PART LENGTH_WIDTH CLOCK_MHZ JOBS"
    exit 2
}
lassign $argv verilog top out_dir overlay ip_inst dma_inst part length_width clock_mhz jobs
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
set board [lindex [get_board_parts -quiet -latest_file_version *pynq-z2*] 0]
if {$board ne ""} {
    set_property board_part $board [current_project]
}
set_property ip_repo_paths $ip_repo [current_project]
update_ip_catalog
create_bd_design $overlay

set ps [create_bd_cell -type ip -vlnv xilinx.com:ip:processing_system7:5.5 processing_system7_0]
apply_bd_automation -rule xilinx.com:bd_rule:processing_system7 \
    -config [list make_external "FIXED_IO, DDR" apply_board_preset [expr {$board ne "" ? 1 : 0}] \
             Master Disable Slave Disable] $ps
set_property -dict [list \
    CONFIG.PCW_FPGA0_PERIPHERAL_FREQMHZ $clock_mhz \
    CONFIG.PCW_USE_M_AXI_GP0 1 \
    CONFIG.PCW_USE_S_AXI_HP0 1 \
    CONFIG.PCW_S_AXI_HP0_DATA_WIDTH $STREAM_BITS] $ps

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

# One clock (FCLK_CLK0) for everything.
connect_bd_net [get_bd_pins processing_system7_0/FCLK_CLK0] \
    [get_bd_pins processing_system7_0/M_AXI_GP0_ACLK] \
    [get_bd_pins processing_system7_0/S_AXI_HP0_ACLK] \
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

# Resets: the PS's FCLK_RESET0_N through proc_sys_reset (active-low, synchronous to FCLK_CLK0).
connect_bd_net [get_bd_pins processing_system7_0/FCLK_RESET0_N] [get_bd_pins proc_sys_reset_0/ext_reset_in]
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

# Control: the PS's GP0 master -> the DMA's and the accelerator's AXI4-Lite registers.
connect_bd_intf_net [get_bd_intf_pins processing_system7_0/M_AXI_GP0] [get_bd_intf_pins axi_interconnect_control/S00_AXI]
connect_bd_intf_net [get_bd_intf_pins axi_interconnect_control/M00_AXI] [get_bd_intf_pins $dma_inst/S_AXI_LITE]
connect_bd_intf_net [get_bd_intf_pins axi_interconnect_control/M01_AXI] [get_bd_intf_pins $ip_inst/$CONTROL_INTF]

# Data: the DMA reads and writes DDR through HP0 and streams to and from the accelerator.
connect_bd_intf_net [get_bd_intf_pins $dma_inst/M_AXI_MM2S] [get_bd_intf_pins axi_interconnect_memory/S00_AXI]
connect_bd_intf_net [get_bd_intf_pins $dma_inst/M_AXI_S2MM] [get_bd_intf_pins axi_interconnect_memory/S01_AXI]
connect_bd_intf_net [get_bd_intf_pins axi_interconnect_memory/M00_AXI] [get_bd_intf_pins processing_system7_0/S_AXI_HP0]
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
