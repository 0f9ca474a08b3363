a1.c
