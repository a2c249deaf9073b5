# Runs a libFuzzer binary for SECONDS on the corpus SCRATCH, made from the
# seeds in SEEDS (which it reads but never writes), with the tokens of
# DICT and inputs of at most MAXLEN bytes.  A crash, leak or timeout
# fails, and libFuzzer leaves the input in ARTIFACTS.
file(MAKE_DIRECTORY ${SCRATCH} ${ARTIFACTS})
file(GLOB seeds ${SEEDS}/*)
file(COPY ${seeds} DESTINATION ${SCRATCH})
execute_process(
  COMMAND ${FUZZER} -max_total_time=${SECONDS} -timeout=30 -max_len=${MAXLEN}
          -dict=${DICT}
          -print_final_stats=1 -artifact_prefix=${ARTIFACTS}/
          ${SCRATCH} ${SEEDS}
  RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "${FUZZER} failed (${rc}): see ${ARTIFACTS}")
endif()
