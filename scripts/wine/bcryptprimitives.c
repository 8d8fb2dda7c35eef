/*
 * A stand-in for Windows' bcryptprimitives.dll, for test runs under Wine only.
 *
 * Rust's std (1.78 and later) draws its random numbers (HashMap keys) from
 * ProcessPrng in bcryptprimitives.dll, which every Windows 10 and 11 has but Wine 8.0
 * (Debian 12) does not: every Rust program then fails to start there with
 * STATUS_DLL_NOT_FOUND. scripts/wine-test.sh builds this file with mingw-w64 and puts it
 * next to the .exe files it runs. It is never shipped: real Windows loads its own.
 */
#include <windows.h>

/* advapi32's RtlGenRandom (SystemFunction036), which Wine has. */
BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T length)
{
    while (length > 0) {
        ULONG chunk = length > 0x10000000 ? 0x10000000 : (ULONG)length;
        if (!SystemFunction036(data, chunk))
            return FALSE;
        data += chunk;
        length -= chunk;
    }
    return TRUE;
}
