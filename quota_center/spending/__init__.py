"""The center's own spending path: Deduct, Return, DeductBatch and reservations."""
