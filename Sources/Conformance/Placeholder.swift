// Placeholder: the reference client is being built.
