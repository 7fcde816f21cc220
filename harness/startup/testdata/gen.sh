#!/bin/bash
# Regenerates the small ELF files the startup tests use, so that the tests
# themselves need no cross compiler. Run with `go generate ./harness/startup`.
# Needs gcc-arm-linux-gnueabihf + libc6-dev-armhf-cross, gcc-aarch64-linux-gnu
# and gcc (amd64).
set -euo pipefail
cd "$(dirname "$0")"
src=src out=elf
mkdir -p "$out"
CC=arm-linux-gnueabihf-gcc
SO="-shared -fPIC -nostdlib -Wl,--hash-style=gnu -Wl,--build-id=none -s"

$CC $SO -Wl,-soname,ld-linux-armhf.so.3 -Wl,--version-script=$src/ld.map -o $out/ld-stub.so $src/ld_stub.c
$CC $SO -Wl,-soname,libc.so.6 -Wl,--version-script=$src/libc-2.36.map -o $out/libc-2.36-stub.so $src/libc_stub.c -Wl,--no-as-needed $out/ld-stub.so
$CC $SO -Wl,-soname,libc.so.6 -Wl,--version-script=$src/libc-2.31.map -o $out/libc-2.31-stub.so $src/libc_stub.c -Wl,--no-as-needed $out/ld-stub.so
$CC $SO -DWITH_V2 -Wl,-soname,libfoo.so.1 -Wl,--version-script=$src/libfoo-v2.map -o $out/libfoo-v2.so $src/libfoo.c
$CC $SO -Wl,-soname,libfoo.so.1 -Wl,--version-script=$src/libfoo-v1.map -o $out/libfoo-v1.so $src/libfoo.c
$CC $SO -Wl,-soname,libbar.so.2 -o $out/libbar-armhf.so $src/libbar.c
$CC $SO -mfloat-abi=soft -Wl,-soname,libbar.so.2 -o $out/libbar-armel.so $src/libbar.c
aarch64-linux-gnu-gcc -shared -fPIC -nostdlib -Wl,--build-id=none -s -Wl,-soname,libbar.so.2 -o $out/libbar-arm64.so $src/libbar.c
gcc -shared -fPIC -nostdlib -Wl,--build-id=none -s -Wl,-soname,libbar.so.2 -o $out/libbar-amd64.so $src/libbar.c

# Programs link against the real armhf glibc, so they carry its versions
# (__libc_start_main@GLIBC_2.34).
APP="-O2 -Wl,--build-id=none -s"
$CC $APP -o $out/app-runpath $src/app_foo.c $out/libfoo-v2.so -Wl,--enable-new-dtags -Wl,-rpath,'$ORIGIN/../lib'
$CC $APP -o $out/app-bar $src/app_bar.c $out/libbar-armhf.so
$CC $APP -o $out/app-rpath $src/app_bar.c $out/libbar-armhf.so -Wl,--disable-new-dtags -Wl,-rpath,/opt/bar/lib
$CC -nostdlib -static -O2 -Wl,--build-id=none -s -o $out/app-static $src/app_static.c

# ISA variants for the board check: ARMv6 (a Pi Zero's ARM1176), ARMv8
# AArch32 (runs on a Pi 3, not on a Pi 2), and armel (ARMv5TE soft-float,
# Debian's linux/arm/v5 ABI, with its own loader /lib/ld-linux.so.3).
STATIC="-nostdlib -static -O2 -Wl,--build-id=none -s"
$CC -march=armv6kz+fp -mfpu=vfp -marm -mfloat-abi=hard $STATIC -o $out/app-armv6 $src/app_static.c
$CC -march=armv8-a+crc -mfpu=neon-fp-armv8 -mfloat-abi=hard $STATIC -o $out/app-armv8 $src/app_static.c
$CC -march=armv5te -marm -mfloat-abi=soft $SO -Wl,-soname,ld-linux.so.3 -o $out/ld-armel-stub.so $src/ld_stub.c
$CC -march=armv5te -marm -mfloat-abi=soft -nostdlib -O2 -Wl,--build-id=none -s -Wl,--hash-style=gnu \
	-Wl,-dynamic-linker,/lib/ld-linux.so.3 -o $out/app-armel $src/app_static.c
# libbar.so.2 built for ARMv8 AArch32, once plain and once reading AT_HWCAP
# (runtime CPU dispatch, the way Debian's libgcrypt carries ARMv8 code).
$CC -march=armv8-a -mfpu=neon-fp-armv8 $SO -Wl,-soname,libbar.so.2 -o $out/libbar-armv8.so $src/libbar.c
$CC -march=armv8-a -mfpu=neon-fp-armv8 $SO -Wl,-soname,libbar.so.2 -o $out/libbar-armv8-dispatch.so $src/libbar_dispatch.c
