select
    date_trunc('day', ordered_at) as order_date,
    count(*) as orders,
    sum(total) as revenue
from {{ ref('stg_orders') }}
group by 1
