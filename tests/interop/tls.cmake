# TLS interop helper, included from tests/interop/CMakeLists.txt:
#   include(${CMAKE_CURRENT_SOURCE_DIR}/tls.cmake)
# tls_peer is built next to the interop tests' working directory, where
# tests/interop/test_tls_*.py look for it (or in $NBIO_TLS_PEER).
add_executable(tls_peer ${CMAKE_CURRENT_LIST_DIR}/tls_peer.c)
target_link_libraries(tls_peer PRIVATE nbio_internal)
target_compile_options(tls_peer PRIVATE ${NBIO_WARNINGS})
set_target_properties(tls_peer PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR})
