"""ONNX export with in-graph pre/post-processing, graph surgery for our plugins, engine building."""
