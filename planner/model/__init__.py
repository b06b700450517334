"""What is served: the model catalog, meta-device tracing, the layer graph and the dtypes."""
