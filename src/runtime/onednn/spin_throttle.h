// Short OpenMP spin-waits while other processes keep the cores busy (Note [Spinning on a busy machine]).
#pragma once

namespace compress::runtime::onednn {

// Note [Spinning on a busy machine]
// libgomp, which runs oneDNN's and our parallel regions, makes a waiting
// thread spin before it sleeps: 300,000 pause loops (a few ms) when
// OMP_WAIT_POLICY is unset, only 100 while the process manages more OpenMP
// threads than there are CPUs (gomp_managed_threads > gomp_available_cpus,
// read on every wait in do_spin, config/linux/wait.h). Both counts are fixed
// when libgomp starts, before main(). On a quiet machine the long spin is
// what makes small primitives fast. When other processes want the cores, a
// spinning thread burns the time slice its partner needs to reach the
// barrier, and every one of a model's ~100 barriers waits for the scheduler:
// bench/RESULTS.md ("Latency beside busy processes") measured mobilenet_v2
// batch 1 at 5.6 ms quiet and 450 ms beside one `yes` (ONNX Runtime: 21 ms),
// while GOMP_SPINCOUNT=100 ran it in 8.4 ms there but cost 24-47% on the
// quiet machine. No fixed setting wins both.
//
// So the plan samples the machine (Note [Measuring others' load]) at most
// every kMinLoadWindowS while it runs, and while other processes use more
// than half a core it switches libgomp to its short spin the only way a
// running process can: a parked thread holds an OpenMP thread pool of
// cores + 1 threads, asleep, which lifts gomp_managed_threads above the CPU
// count. When others have used less than a quarter core for a second, the
// parked thread exits and its pool with it (gomp_free_thread lowers the
// count again). The sleeping pool costs no CPU; results are unchanged (only
// how threads wait changes). COMPRESS_SPIN_THROTTLE=off disables it, =on keeps it on
// (the default is auto); OMP_WAIT_POLICY or GOMP_SPINCOUNT, when set, mean
// the user chose the waiting, and the throttle stays off.
void update_spin_throttle();

// Whether the short spin is on now (for --explain and tests).
bool spin_throttled();

}  // namespace compress::runtime::onednn
