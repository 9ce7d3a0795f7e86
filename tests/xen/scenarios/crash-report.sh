#!/bin/sh
# The testbed's crash report, checked on a guest that triple-faults on
# purpose (crash-pvh, tiny-pvh/crash.S): Xen turns the triple fault into a
# reboot, on_reboot = "preserve" keeps the domain, and crash-report reads
# its registers and memory from dom0. It must find what crash.S left: `ud2`
# at rip, the two marker words on the stack, and an IDT of limit 0. dom0's
# init runs the same report on every domain a scenario leaves crashed; the
# Rust test checks that one too (crash-crashy.txt).
#
# Input: /scenario/files/crash-pvh (tiny-pvh/build OUT crash).
. ./lib.sh

cat >/tmp/crashy.cfg <<CFG
name = "crashy"
type = "pvh"
kernel = "/scenario/files/crash-pvh"
memory = 32
on_poweroff = "destroy"
on_crash = "preserve"
on_reboot = "preserve"
CFG
check crashy-create xl create /tmp/crashy.cfg
id=$(xl domid crashy)
triple() { xl dmesg | grep -q "d${id}v0 Triple fault"; }
check crashy-triple-fault wait_for 30 triple
preserved() { xl list crashy 2>/dev/null | awk 'NR == 2 && $5 ~ /s/ { ok = 1 } END { exit !ok }'; }
check crashy-preserved wait_for 10 preserved
/crash-report "$id" >/results/crash-report.txt 2>&1
sed 's/^/report: /' /results/crash-report.txt | grep -E 'report: (code|stack|IDT|  0x|  vector  [0-2]:)' | head -n 12
check crash-report-registers grep -Eq '^ +rip 0x0*100016 ' /results/crash-report.txt
check crash-report-code grep -Eq '^code at rip-16: ([0-9a-f]{2} ){16}0f 0b' /results/crash-report.txt
check crash-report-stack grep -Eq '^  0x[0-9a-f]+: 0x74616f6d68736172$' /results/crash-report.txt
check crash-report-idt grep -Eq '^IDT at 0x0:' /results/crash-report.txt
# crashy stays: dom0's init writes its own report (crash-crashy.txt) after
# the scenario, as for any guest a scenario leaves crashed.
finish
