"""The front door: a request (source, inputs, limits) compiled, cached and evaluated; batches of rows."""
