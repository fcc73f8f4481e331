-- Fails on purpose: the orders table has no customer_segment column.
select
    order_id,
    total,
    customer_segment
from {{ ref('stg_orders') }}
