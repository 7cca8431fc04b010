"""The pipeline's background loops (admission, dispatch, sweeper) and their wake-up signals."""
