// Package faultinject is hil's fault-injection suite (issue 12): real
// QEMU, a real registry and real hil processes, with faults injected from
// outside the way an operator, the OOM killer or an attacker would:
//
//   - the emulator SIGKILLed at random points of every bundled scenario
//     (boot, ready, each step), through hil run and hil gate, and SIGSTOPed;
//   - tampered blobs of every kind in an OCI layout, a docker-save archive
//     and a registry's storage, through hil check, hil run and hil gate;
//   - the cache-poisoning sequence (a tampered layout, then the genuine
//     image from a registry through hil gate);
//   - SIGKILL of hil itself during a run and a replay, then a clean run;
//   - the --insecure matrix (cmd/hil's own tests, run and counted here);
//   - a replay step with an absurd schedule.
//
// Its one test, TestFaultInjection, prints a table at the end — faults
// injected, wrong passes, wrong fails, wrong promotions, leftovers, every
// one 0 but the first — with the random seed (HIL_FAULT_SEED overrides it).
// go test shows a passing package's output only with -v, so the table is
// also written to $HIL_FAULT_TABLE when set; make test prints that file.
package faultinject
