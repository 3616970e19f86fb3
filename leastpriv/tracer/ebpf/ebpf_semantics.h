// Generated from leastpriv/kernel/semantics.py by tools/gen_ebpf_semantics.py (make tables).
// Do not edit: change the Python table and regenerate.
#pragma once

#define K_NONE 0
#define K_OPEN 1
#define K_CREAT 2
#define K_OPENAT2 3
#define K_BIND 4
#define K_CONNECT 5
#define K_SOCKET 6
#define K_CLOSE 7
#define K_EXEC 8
#define K_FORK 9
#define K_PATHOP 10

#define ACC_READ 1
#define ACC_WRITE 2
#define ACC_CREATE 4
#define ACC_EXEC 8

#define OPEN_ACC(m) ((m) == 0 ? 1 : (m) == 1 ? 2 : (m) == 2 ? 3 : (m) == 3 ? 3 : 0)   // O_ACCMODE -> access bits
#define CREAT_FLAGS 01101   // creat() = O_WRONLY | O_CREAT | O_TRUNC
#define AT_FDCWD_ (-100)
