/* serve: `heapspy serve`, an agent serving heap profiles of running Go programs over HTTP. */
#ifndef HEAPSPY_SERVE_H
#define HEAPSPY_SERVE_H

int cmd_serve(int argc, char **argv);

#endif
