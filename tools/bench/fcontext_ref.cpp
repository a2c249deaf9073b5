// Reference measurements with Boost.Context's raw fcontext primitives, the
// cheapest portable user-space switch there is: no signal mask, no
// scheduler, only the callee-saved registers.  Plain C entry points so that
// bench.c times them with the same clock and the same best-of-N loop as the
// socketloop measurements.  MIT licence, see LICENSE.
#include <boost/context/detail/fcontext.hpp>

#include <cstddef>
#include <cstdlib>

namespace fc = boost::context::detail;

extern "C" {
void slb_fctx_pingpong(long switches);
void slb_fctx_create(long n);
}

namespace {

constexpr std::size_t kStackSize = 64 * 1024;

// One stack for each experiment, allocated once and reused: the reference
// is the switch itself, not the allocator.
void *stack_top()
{
    static char *stack;
    if (!stack) {
        stack = static_cast<char *>(std::aligned_alloc(64, kStackSize));
        if (!stack) std::abort();
    }
    return stack + kStackSize;
}

// The other side of the ping-pong: jumps straight back, for ever.
void pong(fc::transfer_t t)
{
    for (;;) t = fc::jump_fcontext(t.fctx, nullptr);
}

// Started, then jumps back once and is never resumed (its context is simply
// dropped, like a coroutine that finished).
void finish(fc::transfer_t t)
{
    fc::jump_fcontext(t.fctx, nullptr);
    std::abort(); // never resumed
}

} // namespace

// `switches` jump_fcontext calls in total, half each way.
void slb_fctx_pingpong(long switches)
{
    fc::transfer_t t{fc::make_fcontext(stack_top(), kStackSize, pong), nullptr};
    for (long i = 0; i < switches / 2; i++) t = fc::jump_fcontext(t.fctx, nullptr);
    // The pong context stays suspended in its loop and is dropped with the
    // stack reused next time; it owns nothing.
}

// n times: make a context on the preallocated stack, jump into it, and let
// it end by jumping back.
void slb_fctx_create(long n)
{
    void *top = stack_top();
    for (long i = 0; i < n; i++) {
        fc::fcontext_t f = fc::make_fcontext(top, kStackSize, finish);
        fc::jump_fcontext(f, nullptr);
    }
}
