"""One reader per source app: `read(open_stream, ctx)` yields archive records in archive order.

`open_stream()` gives the file's bytes from the start (UTF-8 guaranteed); a reader may call
it more than once (big-AGI reads its folders before its conversations).
"""
