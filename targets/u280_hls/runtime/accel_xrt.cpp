// accel_xrt.cpp - the accelerator on an Alveo card through XRT's native API. Each buffer is
// allocated in the memory bank of the first kernel argument it is bound to (group_id), which
// connectivity.cfg maps to its HBM pseudo-channel; runs of one host step are started together
// and waited for together. Built by `make host_xrt` where XRT is installed.
#include "irt_accel.h"

#include <map>
#include <string>
#include <vector>

#include "xrt/xrt_bo.h"
#include "xrt/xrt_device.h"
#include "xrt/xrt_kernel.h"

extern const char *const IRT_KERNEL_NAMES[];
extern const int IRT_KERNEL_COUNT;
extern const int IRT_BUFFER_FIRST_USE[][2];

namespace {
class Xrt : public IrtAccelerator {
    xrt::device device_;
    xrt::uuid uuid_;
    std::vector<xrt::kernel> kernels_;
    std::map<int, xrt::bo> bos_;
    std::vector<xrt::run> runs_;

public:
    explicit Xrt(const char *xclbin) : device_(0) {
        uuid_ = device_.load_xclbin(xclbin);
        for (int k = 0; k < IRT_KERNEL_COUNT; ++k)
            kernels_.emplace_back(device_, uuid_, IRT_KERNEL_NAMES[k]);
    }
    void alloc(int buffer, size_t bytes) override {
        const int k = IRT_BUFFER_FIRST_USE[buffer][0], arg = IRT_BUFFER_FIRST_USE[buffer][1];
        bos_[buffer] = xrt::bo(device_, bytes ? bytes : 64, kernels_[k].group_id(arg));
        std::vector<char> zeros(bytes, 0);
        if (bytes) write(buffer, zeros.data(), bytes);
    }
    void write(int buffer, const void *src, size_t bytes) override {
        bos_[buffer].write(src, bytes, 0);
        bos_[buffer].sync(XCL_BO_SYNC_BO_TO_DEVICE, bytes, 0);
    }
    void read(int buffer, void *dst, size_t bytes) override {
        bos_[buffer].sync(XCL_BO_SYNC_BO_FROM_DEVICE, bytes, 0);
        bos_[buffer].read(dst, bytes, 0);
    }
    void start(int kernel, const IrtArg *args, int n) override {
        xrt::run run(kernels_[kernel]);
        for (int i = 0; i < n; ++i) {
            if (args[i].kind == 'b') run.set_arg(i, bos_[args[i].buffer]);
            else if (args[i].kind == 'i') run.set_arg(i, args[i].i);
            else run.set_arg(i, args[i].f);
        }
        run.start();
        runs_.push_back(run);
    }
    void wait() override {
        for (auto &r : runs_) r.wait();
        runs_.clear();
    }
};
}  // namespace

IrtAccelerator *irt_make_xrt(const char *xclbin) { return new Xrt(xclbin); }
