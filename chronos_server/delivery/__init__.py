"""Push delivery: request building and signing (pure), the guarded HTTP sender, classification."""
