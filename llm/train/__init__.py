"""The one training loop, and the Task interface that every objective implements."""
