"""The points supermarket (积分超市): shops (shops), their shelves and stock (shelves),
redemption by order and pickup (redemption) or at the counter (counter), the qualification
line (qualification), each shop's monthly settlement (reconciliation) and the township's
outstanding points (liability)."""
