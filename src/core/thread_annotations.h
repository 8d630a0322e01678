// Thread-safety annotations (leveldb/abseil style). Under clang with -Wthread-safety they
// are checked where the mutex type is annotated; elsewhere they document which mutex
// guards a field or which lock a function expects.
#pragma once

#if defined(__clang__)
#define HAFAB_THREAD_ANNOTATION(x) __attribute__((x))
#else
#define HAFAB_THREAD_ANNOTATION(x)
#endif

// The field may be read or written only with `mu` held.
#define GUARDED_BY(mu) HAFAB_THREAD_ANNOTATION(guarded_by(mu))
// The function must be called with `mu` held.
#define REQUIRES_LOCK(mu) HAFAB_THREAD_ANNOTATION(requires_capability(mu))
