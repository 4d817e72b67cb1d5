"""Training stages: SFT and GRPO as thin layers over TRL + PEFT + accelerate."""
