/* Wine 8 has no bcryptprimitives.dll, whose ProcessPrng the Rust standard library (in
 * the tokenizers wheel) imports on Windows 10+. This stand-in forwards to
 * BCryptGenRandom. Built and installed into the lane's WINEPREFIX only: real Windows
 * has the real DLL. */
#include <windows.h>
#include <bcrypt.h>

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len)
{
    while (len > 0) {
        ULONG chunk = len > 0x40000000 ? 0x40000000 : (ULONG)len;
        if (BCryptGenRandom(NULL, data, chunk, BCRYPT_USE_SYSTEM_PREFERRED_RNG) != 0)
            return FALSE;
        data += chunk;
        len -= chunk;
    }
    return TRUE;
}
