select
    id as order_id,
    customer_id,
    total_cents / 100.0 as total,
    ordered_at,
    _synced_at as synced_at
from {{ source('orders', 'orders') }}
