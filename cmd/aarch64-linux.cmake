# CMake toolchain file: m64run for 64-bit Arm Linux, cross-compiled on another Linux host
# with clang-19 and lld. Needs Debian's libc6-dev-arm64-cross and libgcc-12-dev-arm64-cross
# (gcc-aarch64-linux-gnu brings both) and the arm64 libraries m64run links, from a
# multiarch apt (`dpkg --add-architecture arm64`): libzstd-dev:arm64 libsodium-dev:arm64
# libmicrohttpd-dev:arm64 libjansson-dev:arm64.
#   cmake -S . -B build-aarch64 -DCMAKE_TOOLCHAIN_FILE=cmd/aarch64-linux.cmake -DM64_RUNTIME_ONLY=ON
#   cmake --build build-aarch64 --target m64run
# Run it on an arm64 machine, or here under qemu: qemu-aarch64 -L /usr/aarch64-linux-gnu build-aarch64/cmd/m64run
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER clang-19)
set(CMAKE_C_COMPILER_TARGET aarch64-linux-gnu)
set(CMAKE_CXX_COMPILER clang++-19)
set(CMAKE_CXX_COMPILER_TARGET aarch64-linux-gnu)
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)
set(CMAKE_EXE_LINKER_FLAGS_INIT "-fuse-ld=lld")
set(CMAKE_SHARED_LINKER_FLAGS_INIT "-fuse-ld=lld")
# libraries: the arm64 ones only (the multiarch folder, the cross C library); headers:
# the cross C library's, then the host's arch-independent ones (zstd.h, sodium.h)
set(CMAKE_FIND_ROOT_PATH /usr/aarch64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY BOTH)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE BOTH)
