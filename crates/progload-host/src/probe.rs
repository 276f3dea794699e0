//! Kernel probe: exec a program under ptrace and read the image the kernel built.
