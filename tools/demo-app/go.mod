module heapspy.demo/app

go 1.19
