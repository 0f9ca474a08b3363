b2.c
