"""Fast inference beside the reference models: the engine (`engine.classify`), packed real tokens
(`packing`), oneDNN products (`kernels`), int8 (`quantize`), the allocator (`allocator`) and the
per-thread modes they share (`thread_mode`). See docs/architecture.md."""
