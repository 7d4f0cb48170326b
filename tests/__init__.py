"""remediator's tests: unit (pure core), integration (adapters vs real components), e2e."""
