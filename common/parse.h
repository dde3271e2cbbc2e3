/* SPDX-License-Identifier: MIT */
/*
 * parse.h: strict conversions from text to numbers, sizes, durations, booleans.
 *
 * Every parser takes the whole string: no leading or trailing white space, no
 * sign on an unsigned number, no trailing garbage, no empty input. Errors:
 * -EINVAL for text that is not a number of that kind, -ERANGE when the value
 * does not fit. *ret is written only on success. These replace atoi() and
 * friends (banned), which cannot report either error.
 */
#ifndef GRANARY_COMMON_PARSE_H
#define GRANARY_COMMON_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Decimal only: "007" is 7, "0x10" is -EINVAL. */
int parse_uint64(const char *s, uint64_t *ret);
int parse_int64(const char *s, int64_t *ret);
int parse_uint32(const char *s, uint32_t *ret);
int parse_int(const char *s, int *ret);

/* 1..65535 ("0" allowed only when allow_zero: "pick a free port"). */
int parse_port(const char *s, bool allow_zero, uint16_t *ret);

/*
 * A size in bytes: "4096", "64K", "256M", "1.5G", "2T" (also P, E), with
 * binary units (K = 1024). "KiB", "MiB"... and a trailing "B" ("512B") are
 * accepted too. Decimal units ("MB") are refused with -EINVAL rather than
 * guessed at.
 */
int parse_size(const char *s, uint64_t *ret);

/*
 * A duration in milliseconds: a bare number is seconds; units ms, s, m (or
 * min), h, d, w; parts add up ("1h30m").
 */
int parse_duration_ms(const char *s, uint64_t *ret);

/* 1, yes, y, true, on / 0, no, n, false, off (any case). */
int parse_bool(const char *s, bool *ret);

/*
 * Human-readable size with binary units ("1.5G", "64K", "512B") into buf.
 * Returns buf.
 */
char *format_size(char *buf, size_t size, uint64_t bytes);
#define FORMAT_SIZE_MAX 16

#endif
