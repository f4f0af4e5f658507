"""TensorRT plugins (C++/CUDA): modulated deformable conv and fused prototype selection."""
