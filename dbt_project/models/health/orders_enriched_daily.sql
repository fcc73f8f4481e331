select
    date_trunc('day', ordered_at) as order_date,
    customer_segment,
    count(*) as orders
from {{ ref('orders_enriched') }}
group by 1, 2
