"""GPUs: what NVML (or the fake) reports, slots and pools, and admission by memory."""
