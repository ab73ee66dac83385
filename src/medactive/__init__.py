"""medactive."""
