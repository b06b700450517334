"""The torch.distributed validation runner."""
