c3.c
