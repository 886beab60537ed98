# The hardening Debian builds its packages with (dpkg-buildflags), on the
# programs that are installed and the library they are made of: checked
# variants of memcpy, read and the like where the compiler knows the buffer
# size (_FORTIFY_SOURCE, which needs optimisation), stack canaries in
# functions with arrays, and a GOT that is read-only after start-up (full
# RELRO: relro plus now). Position-independent executables are Debian's gcc
# default. Off in the sanitizer and fuzzing builds, which bring their own
# checks, and _FORTIFY_SOURCE off in Debug, where it does nothing.
option(TCPMSG_HARDENING "Build the programs with _FORTIFY_SOURCE, stack protector and full RELRO" ON)
if(TCPMSG_HARDENING AND NOT TCPMSG_SANITIZE AND NOT TCPMSG_FUZZ)
  foreach(target tcpmsg_core tcpmsgd tcpmsg tcpmsg-transports)
    target_compile_options(${target} PRIVATE -fstack-protector-strong)
    target_compile_definitions(${target} PRIVATE $<$<NOT:$<CONFIG:Debug>>:_FORTIFY_SOURCE=2>)
  endforeach()
  foreach(target tcpmsgd tcpmsg tcpmsg-transports)
    target_link_options(${target} PRIVATE LINKER:-z,relro LINKER:-z,now)
  endforeach()
endif()
