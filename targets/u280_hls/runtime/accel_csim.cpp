// accel_csim.cpp - C simulation: buffers are host memory, a run calls the kernel function.
#include "irt_accel.h"

#include <cstdlib>
#include <cstring>
#include <vector>

void irt_csim_dispatch(int kernel, const IrtArg *args, int n, void *const *mem);

namespace {
class CSim : public IrtAccelerator {
    std::vector<void *> mem_;

public:
    ~CSim() override {
        for (void *p : mem_) std::free(p);
    }
    void alloc(int buffer, size_t bytes) override {
        if ((int)mem_.size() <= buffer) mem_.resize(buffer + 1, nullptr);
        mem_[buffer] = std::calloc(bytes ? bytes : 1, 1);
    }
    void write(int buffer, const void *src, size_t bytes) override {
        std::memcpy(mem_[buffer], src, bytes);
    }
    void read(int buffer, void *dst, size_t bytes) override {
        std::memcpy(dst, mem_[buffer], bytes);
    }
    void start(int kernel, const IrtArg *args, int n) override {
        irt_csim_dispatch(kernel, args, n, mem_.data());  // runs to completion
    }
    void wait() override {}
};
}  // namespace

IrtAccelerator *irt_make_csim() { return new CSim(); }
