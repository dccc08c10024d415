/*
 * A minimal harness for the unit tests: each test is a function; failed checks are reported with
 * file and line, and the binary prints one "PASS name" or "FAIL name" line per test, which
 * tests/run.py counts. The exit status is the number of failed tests.
 */
#ifndef HEAPSPY_CHECK_H
#define HEAPSPY_CHECK_H

#include <stdio.h>

static int check_failed_;

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "  %s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
			check_failed_ = 1;                                                         \
		}                                                                                  \
	} while (0)

#define RUN(fn)                                                                                    \
	do {                                                                                       \
		check_failed_ = 0;                                                                 \
		fn();                                                                              \
		printf("%s %s\n", check_failed_ ? "FAIL" : "PASS", #fn);                           \
		failures += check_failed_;                                                         \
	} while (0)

#endif
