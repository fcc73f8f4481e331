select
    date_trunc('hour', ordered_at) as order_hour,
    sum(total) as revenue
from {{ ref('stg_orders') }}
group by 1
