// jemalloc's settings for the engine (design note 60). jemalloc reads `malloc_conf` when it
// starts; MALLOC_CONF in the environment is read after it and wins.
//
// tcache_max 64 KiB (jemalloc 5.3's default is 32 KiB): librdkafka compresses every message
// set with lz4, and LZ4F allocates its 64 KiB working buffer with calloc for each one. A
// 64 KiB block comes from the arena, not the thread's cache, and jemalloc zeroes a reused
// one by handing its pages back to the kernel (madvise MADV_DONTNEED) and letting them fault
// in again, each call also flushing the TLB of the other core: ~1,600 madvise calls and
// ~10,000 page faults a second at 3,800 routed msg/s. From the thread's cache the block is
// zeroed with memset instead. A thread keeps a few such blocks cached (jemalloc's own
// garbage collection lets them go when unused).
// NOLINTNEXTLINE(readability-identifier-naming): the name jemalloc looks for
extern "C" const char* const malloc_conf = "tcache_max:65536";
