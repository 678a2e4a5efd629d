// irt_accel.h - the host's one view of the accelerator: buffers, kernel runs, waiting.
//
// Two implementations: accel_csim.cpp calls the kernels' C++ directly (C simulation, builds
// with g++ anywhere) and accel_xrt.cpp drives an Alveo card through XRT's native C++ API
// (device, xclbin, kernel, buffer objects, runs; built only where Vitis/XRT is installed).
#ifndef IRT_ACCEL_H
#define IRT_ACCEL_H

#include <cstddef>
#include <cstdint>

struct IrtArg {
    char kind;  // 'b' a buffer, 'i' an int32 scalar, 'f' a float scalar
    int buffer;
    int32_t i;
    float f;
};

static inline IrtArg irt_buf(int b) { IrtArg a = {'b', b, 0, 0.0f}; return a; }
static inline IrtArg irt_int(int32_t v) { IrtArg a = {'i', -1, v, 0.0f}; return a; }
static inline IrtArg irt_float(float v) { IrtArg a = {'f', -1, 0, v}; return a; }

class IrtAccelerator {
public:
    virtual ~IrtAccelerator() {}
    virtual void alloc(int buffer, size_t bytes) = 0;
    virtual void write(int buffer, const void *src, size_t bytes) = 0;  // host -> device
    virtual void read(int buffer, void *dst, size_t bytes) = 0;         // device -> host
    virtual void start(int kernel, const IrtArg *args, int n) = 0;      // returns at once
    virtual void wait() = 0;                                            // every started run
};

IrtAccelerator *irt_make_csim();
IrtAccelerator *irt_make_xrt(const char *xclbin);

#endif
