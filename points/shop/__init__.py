"""The points supermarket (积分超市)."""
