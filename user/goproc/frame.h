/* One source-level frame of a symbolized program counter. */
#ifndef HEAPSPY_FRAME_H
#define HEAPSPY_FRAME_H

#include <stdint.h>

/*
 * Strings are borrowed from whoever produced the frame (the symbolizer keeps the binary mapped for
 * its whole life), so a frame is valid as long as its producer is open.
 */
struct hs_frame {
	const char
	    *function;	  /* Go's full name, e.g. "main.(*cache).put", as CallersFrames prints it */
	const char *file; /* absolute source path as recorded by the Go linker, or "" */
	uint32_t line;	  /* 0 when unknown */
	uint64_t func_entry; /* link-time entry address of the outermost (physical) function */
	uint8_t func_id;     /* the runtime's abi.FuncID of this frame's function: its numbering
				changes between releases (gostack reads it) */
	const char *symbol;  /* the linker's name: a generic's shapes in full, not "[...]" */
	uint64_t pc;	     /* link-time address the frame is at: the one looked up for the
				innermost, its inlined call's parentPc for each enclosing frame */
};

#endif
