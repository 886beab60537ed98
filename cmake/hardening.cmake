# The hardening Debian builds its packages with (dpkg-buildflags): checked
# variants of memcpy, read and the like where the compiler knows the buffer
# size (_FORTIFY_SOURCE, which needs optimisation), stack canaries in
# functions with arrays, and a GOT that is read-only after start-up (full
# RELRO: relro plus now). Position-independent executables are Debian's gcc
# default. Off in the sanitizer and fuzzing builds, which bring their own
# checks, and in Debug, where _FORTIFY_SOURCE does nothing.
option(TCPMSG_HARDENING "Build with _FORTIFY_SOURCE, stack protector and full RELRO" ON)
if(TCPMSG_HARDENING AND NOT TCPMSG_SANITIZE AND NOT TCPMSG_FUZZ)
  add_compile_options(-fstack-protector-strong)
  add_compile_definitions($<$<NOT:$<CONFIG:Debug>>:_FORTIFY_SOURCE=2>)
  add_link_options(LINKER:-z,relro LINKER:-z,now)
endif()
