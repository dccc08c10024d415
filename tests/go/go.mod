module heapspy.test/programs

go 1.19
