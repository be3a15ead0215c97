/*
 * gRPC's locks are abseil mutexes. Debian builds abseil without NDEBUG,
 * which leaves abseil's lock-order (deadlock) detector on: every lock and
 * unlock inside gRPC updates a global graph of lock pairs. That debugging
 * aid was 6-7% of the frontend's CPU per delivered update. This turns it
 * off; nothing of configstream's own locks through abseil.
 */
#include <absl/synchronization/mutex.h>

extern "C" void
cs_grpc_lock_checks_off(void)
{
    absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
}
