// test_threads.cc — the worker pool: every index visited exactly once for many
// (n, grain, threads), the chunk partition independent of the pool size, pool
// reuse, real concurrency (a rendezvous, not a timing), argument errors and
// the SIMD level override.
#include "test_helpers.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <set>
#include <thread>
#include <utility>
#include <vector>

extern "C" {
#include "bitnet/threads.h"
}

namespace {


PoolPtr MakePool(int n) {
    bn_pool *p = nullptr;
    bn_error err;
    EXPECT_OK(bn_pool_create(n, &p, &err), err);
    return PoolPtr(p);
}

struct Visits {
    std::vector<std::atomic<int>> count;
    std::mutex mu;
    std::set<std::pair<int64_t, int64_t>> chunks;
    std::set<std::thread::id> threads;
    explicit Visits(int64_t n) : count((size_t)n) {}
};

void Visit(void *ctx, int64_t begin, int64_t end) {
    auto *v = static_cast<Visits *>(ctx);
    for (int64_t i = begin; i < end; i++) v->count[(size_t)i]++;
    std::lock_guard<std::mutex> lock(v->mu);
    v->chunks.insert({begin, end});
    v->threads.insert(std::this_thread::get_id());
}

TEST(Threads, EveryIndexExactlyOnceWithTheSameChunks) {
    for (int threads : {1, 2, 3, 4, 7, 16}) {
        PoolPtr pool = MakePool(threads);
        ASSERT_EQ(bn_pool_size(pool.get()), threads);
        for (int64_t n : {0, 1, 2, 5, 63, 64, 65, 1000, 4097})
            for (int64_t grain : {-3, 0, 1, 2, 7, 64, 5000}) {
                Visits v(n);
                bn_pool_parallel_for(pool.get(), n, grain, Visit, &v);
                for (int64_t i = 0; i < n; i++)
                    ASSERT_EQ(v.count[(size_t)i].load(), 1)
                        << "index " << i << " n=" << n << " grain=" << grain << " threads=" << threads;
                // chunks are [c*g, min(n,(c+1)*g)) whatever the pool size
                const int64_t g = grain < 1 ? 1 : grain;
                std::set<std::pair<int64_t, int64_t>> expect;
                for (int64_t b = 0; b < n; b += g) expect.insert({b, std::min(n, b + g)});
                EXPECT_EQ(v.chunks, expect) << "n=" << n << " grain=" << grain << " threads=" << threads;
            }
    }
}

// A rendezvous of `n` parties: every chunk of a parallel_for waits here until
// all `n` have arrived. It completes only if `n` chunks run at the same time,
// i.e. on `n` different threads; a pool that ran them one after another would
// never complete it, which the (generous, never reached when the pool works)
// deadline turns into a failure instead of a hang.
struct Rendezvous {
    explicit Rendezvous(int n) : parties(n) {}
    const int parties;
    std::mutex mu;
    std::condition_variable cv;
    int arrived = 0;
    bool timed_out = false;
    std::set<std::thread::id> threads;
};

void Meet(void *ctx, int64_t, int64_t) {
    auto *r = static_cast<Rendezvous *>(ctx);
    std::unique_lock<std::mutex> lock(r->mu);
    r->threads.insert(std::this_thread::get_id());
    if (++r->arrived == r->parties) r->cv.notify_all();
    if (!r->cv.wait_for(lock, std::chrono::seconds(60), [r] { return r->arrived >= r->parties; }))
        r->timed_out = true;
}

TEST(Threads, WorkersReallyRunInParallel) {
    for (int threads : {2, 3, 4}) {
        PoolPtr pool = MakePool(threads);
        ASSERT_TRUE(pool);
        Rendezvous r(threads);
        bn_pool_parallel_for(pool.get(), threads, 1, Meet, &r);
        EXPECT_FALSE(r.timed_out) << threads << " chunks never ran at the same time";
        EXPECT_EQ(r.arrived, threads);
        EXPECT_EQ(r.threads.size(), (size_t)threads) << "each chunk on its own thread";
    }
}

TEST(Threads, PoolReusedManyTimes) {
    PoolPtr pool = MakePool(3);
    std::atomic<int64_t> total{0};
    for (int rep = 0; rep < 5000; rep++) {
        int64_t n = rep % 37;
        bn_pool_parallel_for(
            pool.get(), n, 1 + rep % 5,
            [](void *ctx, int64_t b, int64_t e) {
                auto *t = static_cast<std::atomic<int64_t> *>(ctx);
                for (int64_t i = b; i < e; i++) *t += i + 1;
            },
            &total);
    }
    int64_t expect = 0;
    for (int rep = 0; rep < 5000; rep++) {
        int64_t n = rep % 37;
        expect += n * (n + 1) / 2;
    }
    EXPECT_EQ(total.load(), expect);
}

TEST(Threads, NullPoolRunsInlineInOrder) {
    std::vector<std::pair<int64_t, int64_t>> calls;
    bn_pool_parallel_for(
        nullptr, 10, 4,
        [](void *ctx, int64_t b, int64_t e) {
            static_cast<std::vector<std::pair<int64_t, int64_t>> *>(ctx)->push_back({b, e});
        },
        &calls);
    std::vector<std::pair<int64_t, int64_t>> expect{{0, 4}, {4, 8}, {8, 10}};
    EXPECT_EQ(calls, expect);
    EXPECT_EQ(bn_pool_size(nullptr), 1);
    EXPECT_EQ(bn_pool_simd(nullptr), bn_simd_best());
}

TEST(Threads, CreateRejectsBadCounts) {
    bn_pool *p = reinterpret_cast<bn_pool *>(0x1);
    bn_error err;
    EXPECT_EQ(bn_pool_create(0, &p, &err), BN_ERR_INVALID);
    EXPECT_EQ(p, nullptr);
    EXPECT_NE(std::string(err.msg).find("0 threads"), std::string::npos) << err.msg;
    EXPECT_EQ(bn_pool_create(BN_POOL_MAX_THREADS + 1, &p, &err), BN_ERR_INVALID);
    bn_pool_destroy(nullptr);  // no-op
}

TEST(Threads, SimdLevelIsDecidedOnceAndCanBeOverridden) {
    PoolPtr pool = MakePool(2);
    EXPECT_EQ(bn_pool_simd(pool.get()), bn_simd_best());
    bn_error err;
    EXPECT_OK(bn_pool_set_simd(pool.get(), BN_SIMD_PORTABLE, &err), err);
    EXPECT_EQ(bn_pool_simd(pool.get()), BN_SIMD_PORTABLE);
    EXPECT_EQ(bn_pool_set_simd(pool.get(), BN_SIMD_AUTO, &err), BN_ERR_INVALID);
    if (bn_simd_best() == BN_SIMD_AVX2) {
        EXPECT_OK(bn_pool_set_simd(pool.get(), BN_SIMD_AVX2, &err), err);
        EXPECT_EQ(bn_pool_simd(pool.get()), BN_SIMD_AVX2);
    } else {
        EXPECT_EQ(bn_pool_set_simd(pool.get(), BN_SIMD_AVX2, &err), BN_ERR_INVALID);
    }
    EXPECT_STREQ(bn_simd_name(BN_SIMD_AVX2), "avx2");
    EXPECT_STREQ(bn_simd_name(BN_SIMD_PORTABLE), "portable");
}

}  // namespace
