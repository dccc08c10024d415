/* record: `heapspy record`, a heap profile of a running or launched Go program. */
#ifndef HEAPSPY_RECORD_H
#define HEAPSPY_RECORD_H

int cmd_record(int argc, char **argv);

#endif
