/* SPDX-License-Identifier: MIT */
/*
 * banned.h: functions that have no safe use in Granary (after git's banned.h).
 *
 * Include it last in every .c file, after all system headers (it redefines
 * names those headers declare). A banned call then fails to compile with an
 * error that names the function. tests/integration/t0001-build-hygiene.sh
 * checks that every C file includes it and that nothing slips past.
 *
 * Use instead: snprintf() or the buf_* helpers (common/buf.h) for strings,
 * strtok_r() or explicit parsing, and the parse_* helpers (common/parse.h)
 * instead of atoi()-style conversions that cannot report errors.
 */
#ifndef GRANARY_COMMON_BANNED_H
#define GRANARY_COMMON_BANNED_H

#define BANNED(func) sorry_##func##_is_a_banned_function

#undef strcpy
#define strcpy(x, y) BANNED(strcpy)
#undef strcat
#define strcat(x, y) BANNED(strcat)
#undef strncpy
#define strncpy(x, y, n) BANNED(strncpy)
#undef strncat
#define strncat(x, y, n) BANNED(strncat)
#undef sprintf
#define sprintf(...) BANNED(sprintf)
#undef vsprintf
#define vsprintf(...) BANNED(vsprintf)
#undef strtok
#define strtok(x, y) BANNED(strtok)
#undef gets
#define gets(x) BANNED(gets)
#undef atoi
#define atoi(x) BANNED(atoi)
#undef atol
#define atol(x) BANNED(atol)
#undef atoll
#define atoll(x) BANNED(atoll)

#endif
